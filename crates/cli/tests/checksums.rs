//! A checksum on every S3 write, on SeaweedFS: each object and part we send carries
//! `x-amz-checksum-crc32c`; the service refuses bytes that do not match it (shown with a raw
//! signed request, curl's `--aws-sigv4`), keeps it (a whole-object CRC32C for one PutObject, a
//! composite `...-N` for a multipart object), and our reads check it. A push into the bucket
//! with a default retention (object lock) succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Command;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// A signed raw request with curl; returns (status, headers and body).
fn curl(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-i",
        "-X",
        method,
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
    ])
    .arg(format!(
        "{}:{}",
        var("BR_S3_ACCESS_KEY"),
        var("BR_S3_SECRET_KEY")
    ))
    .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if let Some(b) = body {
        let f = dir.path().join("body");
        std::fs::write(&f, b).unwrap();
        cmd.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    if method == "HEAD" {
        cmd.arg("-I");
    }
    let out = cmd
        .arg(format!(
            "{}/{}/{path}",
            var("BR_S3_ENDPOINT"),
            var("BR_S3_BUCKET")
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The stored checksum of an object, as a HEAD with checksum mode shows it.
fn stored(path: &str) -> Option<String> {
    let (status, text) = curl("HEAD", path, &[("x-amz-checksum-mode", "ENABLED")], None);
    assert_eq!(status, 200, "{text}");
    text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .starts_with("x-amz-checksum-crc32c:")
            .then(|| l.split_once(':').unwrap().1.trim().to_string())
    })
}

#[test]
fn every_write_carries_a_checksum_the_service_checks_and_keeps() {
    let Some(c) = common::ctx("s3", "checksums") else {
        return;
    };
    // The service refuses bytes that do not match the checksum sent with them.
    let (status, text) = curl(
        "PUT",
        &format!("{}/wrong", c.base),
        &[("x-amz-checksum-crc32c", "AAAAAA==")],
        Some(b"hello world"),
    );
    assert_eq!(status, 400, "a wrong checksum is refused: {text}");
    let (status, _) = curl(
        "PUT",
        &format!("{}/right", c.base),
        &[("x-amz-checksum-crc32c", "yZRlqg==")],
        Some(b"hello world"),
    );
    assert_eq!(status, 200);

    // One PutObject: the whole object's CRC32C is kept, and it is ours.
    let small: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    c.push("one/part", &small, &[], &[]);
    assert_eq!(
        stored(&format!("{}/one/part", c.base)).as_deref(),
        Some(backuprepo_transfer::service::s3::crc32c_header(&small).as_str())
    );
    // Several parts: a composite checksum over the parts (`...-N`).
    let big: Vec<u8> = (0..20_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    c.push("many/parts", &big, &[], &[]);
    let composite = stored(&format!("{}/many/parts", c.base)).expect("a composite checksum");
    assert!(
        composite.ends_with("-3"),
        "8 MiB parts: 3 of them: {composite}"
    );
    // Reads pass their check, verify too.
    assert_eq!(c.ok_env(&["pull", "one/part", "-"], None, &[]), small);
    assert_eq!(c.ok_env(&["pull", "many/parts", "-"], None, &[]), big);
    assert!(c.ok(&["verify", ""]).contains("0 damaged"));
}

#[test]
fn a_push_into_a_bucket_with_default_retention_succeeds() {
    let Some(c) = common::ctx("s3", "locked") else {
        return;
    };
    let locked = var("BR_S3_LOCKED_BUCKET");
    if locked.is_empty() {
        return;
    }
    let conf = std::fs::read_to_string(&c.conf).unwrap().replace(
        &format!("root = {}", var("BR_S3_BUCKET")),
        &format!("root = {locked}"),
    );
    std::fs::write(&c.conf, conf).unwrap();
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 241) as u8).collect();
    c.push("locked/one", b"select 1;", &[], &[]);
    c.push("locked/many", &data, &[], &[]);
    assert_eq!(c.ok_env(&["pull", "locked/many", "-"], None, &[]), data);
}
