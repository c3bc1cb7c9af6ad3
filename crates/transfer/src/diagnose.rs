//! The one classifier of storage failures: what an OpenDAL error means and how to fix it, for
//! the pre-check and the data path alike. The storage's error is read for its code, status and
//! network cause; what is particular to a service (its codes, its bucket, its region, its
//! permissions) comes from its module ([`crate::service`]). No message contains a credential.

use opendal::ErrorKind;

use crate::error::Problem;
use crate::probe::Operation;
use crate::service::Site;

/// The error and every source below it, as one line: the interesting part (a DNS or TLS
/// failure) is often only in the innermost source.
pub(crate) fn full_text(err: &opendal::Error) -> String {
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
pub(crate) fn network_text(err: &opendal::Error) -> String {
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
pub(crate) fn strip_urls(text: &str) -> String {
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
pub(crate) fn root_cause(err: &opendal::Error) -> String {
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

/// The service says the bucket or container does not exist.
pub(crate) fn is_missing_bucket(err: &opendal::Error) -> bool {
    let text = full_text(err);
    text.contains("NoSuchBucket") || text.contains("ContainerNotFound")
}

/// The object (or directory) is not there, and the bucket is.
pub(crate) fn is_gone(err: &opendal::Error) -> bool {
    err.kind() == ErrorKind::NotFound && !is_missing_bucket(err)
}

pub(crate) fn find_code<'a>(text: &str, codes: &[&'a str]) -> Option<&'a str> {
    codes.iter().find(|c| text.contains(*c)).copied()
}

/// Text between `start` and the next `end` after it.
pub(crate) fn between<'a>(text: &'a str, start: &str, end: char) -> Option<&'a str> {
    let i = text.find(start)? + start.len();
    let rest = &text[i..];
    let j = rest.find(end)?;
    Some(&rest[..j]).filter(|s| !s.is_empty() && s.len() < 64)
}

/// What went wrong, and one message naming the problem and the fix. `operation` is the
/// pre-check's step when the probe asks (the message then names the permission it needs and
/// the endpoint it could not reach); the data path passes `None`.
pub fn diagnose(
    site: &Site,
    operation: Option<Operation>,
    err: &opendal::Error,
) -> (Problem, String) {
    let service = site.service();
    let text = full_text(err);
    let target = site.target();
    let endpoint = service.endpoint();
    let net_text = network_text(err);
    let net = |needles: &[&str]| needles.iter().any(|n| net_text.contains(n));

    if is_missing_bucket(err) {
        if let Some(m) = service.missing_bucket(&endpoint) {
            return (Problem::MissingBucket, m);
        }
    }
    if let Some((code, what, fix)) = service.rejected_credentials(&text) {
        return (
            Problem::Credentials,
            format!("the storage at {target} rejected the credentials ({code}): {what}; {fix}"),
        );
    }
    if let Some(m) = service.wrong_region(&text, target) {
        return (Problem::Region, m);
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
        let code = denied_code.map(|c| format!(" ({c})")).unwrap_or_default();
        let m = match operation {
            Some(op) => format!(
                "access denied by {target}{code} for the {op}: the key needs {}; grant it in the bucket policy or the key's role (a read-only key cannot hold backups)",
                service.permission(op)
            ),
            None => format!(
                "access denied by {target}{code}: the key lacks a permission this operation needs; check the access key, secret and the bucket policy or the key's role"
            ),
        };
        return (Problem::Denied, m);
    }

    // TLS: before the connection checks, since a failed handshake is also a failed request.
    if net(&[
        "certificate",
        "handshake",
        "rustls",
        "invalidcontenttype",
        "corrupt message",
        "unknownissuer",
        "tls",
    ]) {
        return (Problem::Tls, format!(
            "TLS failed with {endpoint}: {}; if the server's certificate comes from a private CA, set `caCert` (ca_cert) to that CA's PEM bundle; `insecure: true` (no_check_certificate = true) skips verification (testing only); if the server speaks plain HTTP, use an http:// endpoint",
            root_cause(err)
        ));
    }

    if net(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "nodename nor servname",
        "name resolution",
    ]) {
        let cause = root_cause(err);
        let m = service.unresolved(&endpoint, &cause).unwrap_or_else(|| {
            format!(
                "cannot resolve the host name of {endpoint}: {cause}; check the endpoint (host) spelling and the cluster's DNS"
            )
        });
        return (Problem::Dns, m);
    }

    if net(&[
        "connection refused",
        "tcp connect",
        "connect error",
        "error sending request",
        "connection reset",
        "network is unreachable",
        "no route to host",
        "timed out",
        "connection closed",
    ]) {
        // The probe reports per step, under the repository's name: the endpoint says where.
        // On the data path the target also names the bucket.
        let place = match operation {
            Some(_) => endpoint.clone(),
            None => format!("the storage at {target}"),
        };
        return (Problem::Unreachable, format!(
            "cannot reach {place}: {}; check the endpoint host and port, that the server is running, and that network policies or firewalls allow the connection",
            root_cause(err)
        ));
    }

    if err.kind() == ErrorKind::NotFound && operation == Some(Operation::Get) {
        return (Problem::Other, "the object just written is not there when read back: the storage lacks read-after-write consistency, or a gateway lost the write".to_string());
    }
    (
        Problem::Other,
        format!("storage error at {target}: {}", short(&text)),
    )
}

/// Keep the first line of a long backend message; OpenDAL messages carry the whole HTTP context.
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    if line.chars().count() > 300 {
        format!("{}…", line.chars().take(300).collect::<String>())
    } else {
        line.to_string()
    }
}
