//! Unit tests of the probe (the real-server tests are in `cli/tests/probe.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::diagnose::strip_urls;

fn s3(extra: &str) -> ToolConfig {
    ToolConfig::parse(&format!(
        "[storage]\ntype = s3\nprovider = Minio\naccess_key_id = AK\nsecret_access_key = TOPSECRETVALUE\nendpoint = http://s3.example:9000\nroot = bkt/pre\n{extra}"
    ))
    .unwrap()
}

fn e(kind: ErrorKind, msg: &str) -> opendal::Error {
    opendal::Error::new(kind, msg)
}

#[test]
fn region_mismatch_names_the_region() {
    let cfg = s3("region = us-east-1\n");
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::Unexpected,
            "S3Error { code: \"AuthorizationHeaderMalformed\", message: \"The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'\" }",
        ),
    );
    assert!(m.contains("region mismatch"), "{m}");
    assert!(m.contains("region: eu-west-1"), "{m}");
    assert!(m.contains("us-east-1"), "{m}");

    // A HEAD answered 301 with only the header.
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::Unexpected,
            "response: Parts { status: 301, headers: {\"x-amz-bucket-region\": \"ap-south-1\"} }",
        ),
    );
    assert!(m.contains("region: ap-south-1"), "{m}");

    let m = classify(
        &s3(""),
        Operation::Put,
        e(
            ErrorKind::Unexpected,
            "S3Error { code: \"PermanentRedirect\" }",
        ),
    );
    assert!(m.contains("set `region` to the bucket's region"), "{m}");
    assert!(m.contains("the default"), "{m}");
}

#[test]
fn credentials_and_permissions_are_told_apart() {
    let cfg = s3("");
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::PermissionDenied,
            "S3Error { code: \"SignatureDoesNotMatch\" }",
        ),
    );
    assert!(m.contains("rejected the credentials"), "{m}");
    let m = classify(
        &cfg,
        Operation::Put,
        e(
            ErrorKind::PermissionDenied,
            "S3Error { code: \"AccessDenied\" }",
        ),
    );
    assert!(m.contains("access denied"), "{m}");
    assert!(m.contains("needs write permission"), "{m}");
    let m = classify(
        &cfg,
        Operation::Delete,
        e(ErrorKind::PermissionDenied, "forbidden"),
    );
    assert!(m.contains("delete permission"), "{m}");
}

#[test]
fn azure_bad_key_vs_missing_permission() {
    let cfg = ToolConfig::parse(
        "[storage]\ntype = azureblob\naccount = acct\nkey = S0VZS0VZS0VZ\nendpoint = http://az.example\nroot = c\n",
    )
    .unwrap();
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::PermissionDenied,
            "AuthorizationFailure: Server failed to authenticate the request.",
        ),
    );
    assert!(
        m.contains("rejected the credentials (AuthorizationFailure)"),
        "{m}"
    );
    let m = classify(
        &cfg,
        Operation::Put,
        e(
            ErrorKind::PermissionDenied,
            "AuthorizationPermissionMismatch: This request is not authorized to perform this operation using this permission.",
        ),
    );
    assert!(m.contains("needs write permission"), "{m}");
}

#[test]
fn dns_failure_with_virtual_host_suggests_path_style() {
    let cfg = s3("force_path_style = false\n");
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::Unexpected,
            "send http request: error sending request: client error (Connect): dns error: failed to lookup address information",
        ),
    );
    assert!(m.contains("bkt.s3.example:9000"), "{m}");
    assert!(m.contains("forcePathStyle: true"), "{m}");
    assert!(m.contains("force_path_style = true"), "{m}");
    let m = classify(
        &s3("force_path_style = true\n"),
        Operation::Bucket,
        e(ErrorKind::Unexpected, "dns error: failed to lookup address"),
    );
    assert!(!m.contains("forcePathStyle"), "{m}");
    assert!(m.contains("cannot resolve the host name"), "{m}");
}

#[test]
fn missing_bucket_and_tls() {
    let cfg = s3("");
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::ConfigInvalid,
            "S3Error { code: \"NoSuchBucket\" }",
        ),
    );
    assert!(m.contains("\"bkt\" does not exist"), "{m}");
    assert!(m.contains("never creates buckets"), "{m}");
    let m = classify(
        &cfg,
        Operation::Bucket,
        e(
            ErrorKind::Unexpected,
            "error sending request: invalid peer certificate: UnknownIssuer",
        ),
    );
    assert!(m.contains("caCert"), "{m}");
    assert!(m.contains("insecure"), "{m}");
}

#[test]
fn names_in_urls_never_look_like_symptoms() {
    let cfg = s3("");
    let err = e(ErrorKind::Unexpected, "send http request")
        .with_context("uri", "https://tls-handshake-certificate.example/bkt")
        .set_source(std::io::Error::other(
            "error sending request for url (https://tls-certificate.example/bkt): Connection refused (os error 111)",
        ));
    let m = classify(&cfg, Operation::Bucket, err);
    assert!(m.starts_with("cannot reach http://s3.example:9000"), "{m}");
    assert_eq!(
        strip_urls("a (https://x.y/z) b http://q,c"),
        "a (<url>) b <url>,c"
    );
}

#[test]
fn helpers() {
    assert_eq!(etag_parts("\"0123abcd-2\""), Some(2));
    assert_eq!(etag_parts("\"0123abcd\""), None);
    assert_eq!(fmt_size(5 << 20), "5 MiB");
    assert_eq!(fmt_size((5 << 20) + 1024), "5 MiB + 1 KiB");
    assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(fmt_duration(Duration::from_millis(15)), "15ms");
    assert_eq!(
        ancestors_of("a/b/"),
        vec!["a/", "a/b/", "a/b/.backuprepo-precheck/"]
    );
    assert_eq!(ancestors_of(""), vec![".backuprepo-precheck/"]);
    let a = pattern(100, "x");
    assert_eq!(a, pattern(100, "x"));
    assert_ne!(a, pattern(100, "y"));
    let id = probe_id();
    assert_eq!(id.len(), 16 + 1 + 16, "{id}");
    assert_ne!(id, probe_id());
}

#[test]
fn secrets_are_redacted() {
    let cfg = s3("");
    let rec = Recorder::new(&cfg);
    assert_eq!(
        rec.redact("x TOPSECRETVALUE y".to_string()),
        "x <redacted> y"
    );
}

#[tokio::test]
async fn invalid_prefix_and_missing_local_root_report_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ToolConfig::local_backend(&dir.path().display().to_string()).unwrap();
    let r = run(
        &cfg,
        &ProbeOptions {
            path_prefix: "../up".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(!r.passed());
    assert_eq!(r.checks.len(), 6);
    assert!(r
        .failure()
        .unwrap()
        .starts_with("bucket check failed: invalid pathPrefix"));

    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let cfg = ToolConfig::local_backend(&gone.display().to_string()).unwrap();
    std::fs::remove_dir(&gone).unwrap();
    let r = run(&cfg, &ProbeOptions::default()).await;
    assert!(!r.passed());
    assert_eq!(r.checks.len(), 6);
    assert!(r.failure().unwrap().contains("does not exist"), "{r}");
    assert!(r.checks[1..].iter().all(|c| c.outcome == Outcome::Skipped));
}
