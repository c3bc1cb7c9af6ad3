//! The storage pre-check probe (`backuprepo_transfer::probe`) against real servers: SeaweedFS
//! (S3), vsftpd (FTP), Azurite (Azure Blob) from `scripts/test-servers.sh`, and a local
//! directory. Failure cases that need no server (closed port, a server that never answers, DNS,
//! TLS) use loopback listeners of their own and always run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use backuprepo_transfer::config::ToolConfig;
use backuprepo_transfer::probe::{self, Operation, Outcome, ProbeOptions, ProbeReport, PROBE_DIR};
use backuprepo_transfer::service as backend;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The tool config of a test context (the same one the CLI tests hand to the binary).
fn config_of(ctx: &common::Ctx) -> ToolConfig {
    match ctx
        .env
        .iter()
        .find(|(k, _)| k == "DATASAFED_LOCAL_BACKEND_PATH")
    {
        Some((_, root)) => ToolConfig::local_backend(root).unwrap(),
        None => ToolConfig::load(&ctx.conf).unwrap(),
    }
}

fn opts(prefix: &str, timeout: Duration) -> ProbeOptions {
    ProbeOptions {
        path_prefix: prefix.to_string(),
        timeout,
        ..ProbeOptions::default()
    }
}

fn outcome(r: &ProbeReport, op: Operation) -> Outcome {
    r.check(op).unwrap().outcome
}

fn message(r: &ProbeReport, op: Operation) -> String {
    r.check(op).unwrap().message.clone().unwrap_or_default()
}

fn show(label: &str, r: &ProbeReport) {
    eprintln!(
        "--- probe [{label}] in {:?} (location {})\n{r}",
        r.duration, r.location
    );
}

/// Every path under the storage root that starts with `base`, by a recursive and a
/// delimiter listing (the latter shows the empty "folders" some S3 servers keep).
async fn leftovers(cfg: &ToolConfig, base: &str) -> Vec<String> {
    let op = backend::build(cfg).unwrap();
    let mut out: Vec<String> = Vec::new();
    for recursive in [true, false] {
        let entries = op.list_with("/").recursive(recursive).await.unwrap();
        for e in entries {
            if e.path().starts_with(base) && !out.iter().any(|p| p == e.path()) {
                out.push(e.path().to_string());
            }
        }
    }
    out
}

/// All steps pass, multipart runs where the backend has it, and nothing is left behind.
async fn passes(backend_name: &'static str) {
    let Some(ctx) = common::ctx(backend_name, "probe") else {
        return;
    };
    let cfg = config_of(&ctx);
    let r = probe::run(&cfg, &opts(&ctx.base, Duration::from_secs(60))).await;
    show(backend_name, &r);
    assert!(r.passed(), "[{backend_name}] {r}");
    assert_eq!(r.failure(), None);
    assert_eq!(r.cleanup, None, "[{backend_name}] {r}");
    assert_eq!(
        r.checks.iter().map(|c| c.operation).collect::<Vec<_>>(),
        Operation::ALL.to_vec()
    );
    assert!(r
        .location
        .starts_with(&format!("{}/{PROBE_DIR}/", ctx.base)));
    for op in [
        Operation::Bucket,
        Operation::Put,
        Operation::Get,
        Operation::List,
        Operation::Delete,
    ] {
        assert_eq!(
            outcome(&r, op),
            Outcome::Passed,
            "[{backend_name}] {op}: {r}"
        );
    }
    match backend_name {
        "s3" | "azure" => {
            assert_eq!(outcome(&r, Operation::Multipart), Outcome::Passed, "{r}");
            let m = message(&r, Operation::Multipart);
            assert!(m.contains("5 MiB + 1 KiB"), "{m}");
            if backend_name == "s3" {
                // SeaweedFS reports a multipart object's ETag as `<md5>-<parts>`: proof that
                // CreateMultipartUpload/UploadPart/Complete ran, not one PUT.
                assert!(m.contains("ETag confirms 2 parts"), "{m}");
            } else {
                assert!(m.contains("block list"), "{m}");
            }
        }
        _ => {
            assert_eq!(outcome(&r, Operation::Multipart), Outcome::Skipped, "{r}");
            assert!(
                message(&r, Operation::Multipart).contains("no part limit"),
                "{r}"
            );
        }
    }
    let left = leftovers(&cfg, &ctx.base).await;
    assert!(left.is_empty(), "[{backend_name}] left behind: {left:?}");
    if backend_name == "local" {
        let root = &ctx.env[0].1;
        let names: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != backend::TMP_DIR)
            .collect();
        assert!(names.is_empty(), "left in the local root: {names:?}");
        let tmp = Path::new(root).join(backend::TMP_DIR);
        if tmp.exists() {
            assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_local() {
    passes("local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_s3() {
    passes("s3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_ftp() {
    passes("ftp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_on_azure() {
    passes("azure").await;
}

/// An empty pathPrefix works too, and the probe directory it made at the root is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_prefix_on_local() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ToolConfig::local_backend(&dir.path().display().to_string()).unwrap();
    let r = probe::run(&cfg, &opts("", Duration::from_secs(30))).await;
    assert!(r.passed(), "{r}");
    assert!(r.location.starts_with(&format!("{PROBE_DIR}/")));
    assert!(!dir.path().join(PROBE_DIR).exists());
    // A pathPrefix directory that existed before stays; only what the probe made goes.
    std::fs::create_dir(dir.path().join("keep")).unwrap();
    let r = probe::run(&cfg, &opts("keep/sub", Duration::from_secs(30))).await;
    assert!(r.passed(), "{r}");
    assert!(dir.path().join("keep").is_dir());
    assert!(!dir.path().join("keep/sub").exists());
}

/// Two probes at once on the same prefix do not collide (random ids) and both clean up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_probes_on_s3() {
    let Some(ctx) = common::ctx("s3", "probe-concurrent") else {
        return;
    };
    let cfg = config_of(&ctx);
    let o = opts(&ctx.base, Duration::from_secs(60));
    let (a, b) = tokio::join!(probe::run(&cfg, &o), probe::run(&cfg, &o));
    assert!(a.passed(), "{a}");
    assert!(b.passed(), "{b}");
    assert_ne!(a.location, b.location);
    // Each probe removes only the folders it created; when both race to create the
    // repository's own prefix folder, neither may own it and it can stay (empty). That is the
    // repository's directory, not probe data.
    let prefix_dir = format!("{}/", ctx.base);
    let left: Vec<String> = leftovers(&cfg, &ctx.base)
        .await
        .into_iter()
        .filter(|p| *p != prefix_dir)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn s3_env() -> Option<(String, String, String, String)> {
    // `common::ctx` decides skip vs. fail (BR_REQUIRE_SERVERS) when the server is missing.
    common::ctx("s3", "probe-env")?;
    Some((
        var("BR_S3_ENDPOINT")?,
        var("BR_S3_ACCESS_KEY")?,
        var("BR_S3_SECRET_KEY")?,
        var("BR_S3_BUCKET")?,
    ))
}

fn s3_config(endpoint: &str, key: &str, secret: &str, bucket: &str) -> ToolConfig {
    ToolConfig::parse(&common::s3_conf(endpoint, key, secret, bucket)).unwrap()
}

fn all_messages(r: &ProbeReport) -> String {
    let mut s: String = r
        .checks
        .iter()
        .filter_map(|c| c.message.clone())
        .collect::<Vec<_>>()
        .join("\n");
    s.push_str(&r.failure().unwrap_or_default());
    s.push_str(&r.cleanup.clone().unwrap_or_default());
    s.push_str(&r.to_string());
    s
}

/// A read-only key (SeaweedFS identity with Read+List only): the bucket check passes, put and
/// multipart fail with a permission message, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_key_fails_put_with_permission_message() {
    let Some((ep, key, secret, bucket)) = s3_env() else {
        return;
    };
    let (Some(ro_key), Some(ro_secret)) = (var("BR_S3_RO_ACCESS_KEY"), var("BR_S3_RO_SECRET_KEY"))
    else {
        panic!("BR_S3_RO_ACCESS_KEY/BR_S3_RO_SECRET_KEY missing from the test-servers env");
    };
    let base = format!("t-probe-ro-{}", std::process::id());
    let cfg = s3_config(&ep, &ro_key, &ro_secret, &bucket);
    let r = probe::run(&cfg, &opts(&base, Duration::from_secs(60))).await;
    show("s3 read-only key", &r);
    assert!(!r.passed());
    assert_eq!(outcome(&r, Operation::Bucket), Outcome::Passed, "{r}");
    assert_eq!(outcome(&r, Operation::Put), Outcome::Failed, "{r}");
    let m = message(&r, Operation::Put);
    assert!(m.contains("access denied"), "{m}");
    assert!(m.contains("needs write permission"), "{m}");
    for op in [Operation::Get, Operation::List, Operation::Delete] {
        assert_eq!(outcome(&r, op), Outcome::Skipped, "{r}");
        assert_eq!(message(&r, op), "not run: put failed");
    }
    assert_eq!(outcome(&r, Operation::Multipart), Outcome::Failed, "{r}");
    assert!(
        message(&r, Operation::Multipart).contains("access denied"),
        "{r}"
    );
    let f = r.failure().unwrap();
    assert!(f.starts_with("put failed: access denied"), "{f}");
    assert!(!all_messages(&r).contains(&ro_secret));
    let full = s3_config(&ep, &key, &secret, &bucket);
    let left = leftovers(&full, &base).await;
    assert!(left.is_empty(), "a read-only key wrote: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_secret_is_a_credentials_error_without_the_secret() {
    let Some((ep, key, secret, bucket)) = s3_env() else {
        return;
    };
    let wrong = format!("{secret}-NotTheRightOne");
    let cfg = s3_config(&ep, &key, &wrong, &bucket);
    let r = probe::run(&cfg, &opts("t-probe-cred", Duration::from_secs(60))).await;
    show("s3 wrong secret", &r);
    assert_eq!(outcome(&r, Operation::Bucket), Outcome::Failed, "{r}");
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed:"), "{f}");
    assert!(f.contains("rejected the credentials"), "{f}");
    assert!(f.contains("SignatureDoesNotMatch"), "{f}");
    assert!(f.contains("secretAccessKey"), "{f}");
    for op in &Operation::ALL[1..] {
        assert_eq!(outcome(&r, *op), Outcome::Skipped, "{r}");
    }
    let all = all_messages(&r);
    assert!(!all.contains(&wrong), "secret in {all}");
    assert!(!all.contains(&secret), "secret in {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ftp_password_is_a_credentials_error() {
    if common::ctx("ftp", "probe-cred").is_none() {
        return;
    }
    let (host, port, user) = (
        var("BR_FTP_HOST").unwrap(),
        var("BR_FTP_PORT").unwrap(),
        var("BR_FTP_USER").unwrap(),
    );
    let wrong = "wrong-ftp-password-4711";
    let cfg = ToolConfig::parse(&format!(
        "[storage]\ntype = ftp\nhost = {host}\nport = {port}\nuser = {user}\npass.need_obscure = {wrong}\n"
    ))
    .unwrap();
    let r = probe::run(&cfg, &opts("t-probe-cred", Duration::from_secs(60))).await;
    show("ftp wrong password", &r);
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed:"), "{f}");
    assert!(f.contains("rejected the credentials"), "{f}");
    assert!(!all_messages(&r).contains(wrong));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_azure_key_is_a_credentials_error() {
    if common::ctx("azure", "probe-cred").is_none() {
        return;
    }
    let (ep, account, container) = (
        var("BR_AZ_ENDPOINT").unwrap(),
        var("BR_AZ_ACCOUNT").unwrap(),
        var("BR_AZ_CONTAINER").unwrap(),
    );
    // A well-formed key that is not the account's.
    let wrong = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleQ==";
    let cfg = ToolConfig::parse(&common::az_conf(&ep, &account, wrong, &container)).unwrap();
    let r = probe::run(&cfg, &opts("t-probe-cred", Duration::from_secs(60))).await;
    show("azure wrong key", &r);
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed:"), "{f}");
    assert!(f.contains("rejected the credentials"), "{f}");
    assert!(!all_messages(&r).contains(wrong));
}

/// A missing bucket is reported as such, and the probe does not create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_reported_and_not_created() {
    let Some((ep, key, secret, _)) = s3_env() else {
        return;
    };
    let bucket = format!("br-missing-{}", std::process::id());
    let cfg = s3_config(&ep, &key, &secret, &bucket);
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(60))).await;
    show("s3 missing bucket", &r);
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed:"), "{f}");
    assert!(
        f.contains(&format!("bucket {bucket:?} does not exist")),
        "{f}"
    );
    assert!(f.contains("never creates buckets"), "{f}");
    for op in &Operation::ALL[1..] {
        assert_eq!(outcome(&r, *op), Outcome::Skipped, "{r}");
    }
    // Still missing.
    let op = backend::build(&cfg).unwrap();
    let err = op.list("/").await.unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_azure_container_is_reported() {
    if common::ctx("azure", "probe-missing").is_none() {
        return;
    }
    let (ep, account, key) = (
        var("BR_AZ_ENDPOINT").unwrap(),
        var("BR_AZ_ACCOUNT").unwrap(),
        var("BR_AZ_KEY").unwrap(),
    );
    let container = format!("br-missing-{}", std::process::id());
    let cfg = ToolConfig::parse(&common::az_conf(&ep, &account, &key, &container)).unwrap();
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(60))).await;
    show("azure missing container", &r);
    let f = r.failure().unwrap();
    assert!(
        f.contains(&format!("container {container:?} does not exist")),
        "{f}"
    );
    assert!(f.contains("never creates containers"), "{f}");
    let op = backend::build(&cfg).unwrap();
    let err = op.list("/").await.unwrap_err();
    assert!(err.to_string().contains("ContainerNotFound"), "{err}");
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A closed port: "cannot reach" naming the endpoint (S3 and FTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_named() {
    let port = closed_port();
    let ep = format!("http://127.0.0.1:{port}");
    let cfg = s3_config(&ep, "AK", "SECRETSECRET", "bkt");
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(60))).await;
    show("s3 closed port", &r);
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed: cannot reach"), "{f}");
    assert!(f.contains(&ep), "{f}");
    assert!(f.to_lowercase().contains("connection refused"), "{f}");

    let port = closed_port();
    let cfg = ToolConfig::parse(&format!(
        "[storage]\ntype = ftp\nhost = 127.0.0.1\nport = {port}\nuser = u\npass.need_obscure = p\n"
    ))
    .unwrap();
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(60))).await;
    show("ftp closed port", &r);
    let f = r.failure().unwrap();
    assert!(f.contains("cannot reach"), "{f}");
    assert!(f.contains(&format!("127.0.0.1:{port}")), "{f}");
}

/// A listener that accepts connections and never answers.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// The whole probe is bounded: a server that never answers makes the step in progress fail
/// with "timed out after 2s", promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let port = silent_server();
    let cfg = s3_config(
        &format!("http://127.0.0.1:{port}"),
        "AK",
        "SECRETSECRET",
        "bkt",
    );
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(2))).await;
    show("s3 silent server", &r);
    assert_eq!(outcome(&r, Operation::Bucket), Outcome::Failed);
    let f = r.failure().unwrap();
    assert!(
        f.starts_with("bucket check failed: timed out after 2s"),
        "{f}"
    );
    for op in &Operation::ALL[1..] {
        assert_eq!(outcome(&r, *op), Outcome::Skipped, "{r}");
        assert_eq!(message(&r, *op), "not run: the probe timed out");
    }
    assert!(r.duration < Duration::from_secs(4), "{:?}", r.duration);

    let port = silent_server();
    let cfg = ToolConfig::parse(&format!(
        "[storage]\ntype = ftp\nhost = 127.0.0.1\nport = {port}\nuser = u\npass.need_obscure = p\n"
    ))
    .unwrap();
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(2))).await;
    show("ftp silent server", &r);
    assert!(r.failure().unwrap().contains("timed out after 2s"), "{r}");
    assert!(r.duration < Duration::from_secs(4), "{:?}", r.duration);
}

/// A TCP proxy to `upstream` that, once more than `threshold` bytes went from clients to the
/// server in total, holds the data for `pause` (once): small requests pass, the multipart
/// upload stalls in the middle and then completes.
fn stalling_proxy(upstream: String, threshold: usize, pause: Duration) -> u16 {
    use std::net::{Shutdown, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(AtomicUsize::new(0));
    let paused = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut c_out) = (client.try_clone().unwrap(), client);
            let (mut s_in, mut s_out) = (server.try_clone().unwrap(), server);
            let (sent, paused) = (sent.clone(), paused.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if sent.fetch_add(n, Ordering::SeqCst) + n > threshold
                        && !paused.swap(true, Ordering::SeqCst)
                    {
                        std::thread::sleep(pause);
                    }
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_out.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_in, &mut c_out);
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// The storage stalls in the middle of the multipart upload: that step fails with "timed out
/// after 3s", delete is skipped, and cleanup (within its grace) still removes everything,
/// including the upload that completed late. No incomplete multipart upload is left either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_in_the_middle_still_cleans_up() {
    let Some(ctx) = common::ctx("s3", "probe-midway") else {
        return;
    };
    let (ep, key, secret, bucket) = (
        var("BR_S3_ENDPOINT").unwrap(),
        var("BR_S3_ACCESS_KEY").unwrap(),
        var("BR_S3_SECRET_KEY").unwrap(),
        var("BR_S3_BUCKET").unwrap(),
    );
    let upstream = ep.trim_start_matches("http://").to_string();
    let port = stalling_proxy(upstream, 1 << 20, Duration::from_millis(3500));
    let cfg = s3_config(&format!("http://127.0.0.1:{port}"), &key, &secret, &bucket);
    let r = probe::run(&cfg, &opts(&ctx.base, Duration::from_secs(3))).await;
    show("s3 stalling in the multipart upload, 3s limit", &r);
    for op in [
        Operation::Bucket,
        Operation::Put,
        Operation::Get,
        Operation::List,
    ] {
        assert_eq!(outcome(&r, op), Outcome::Passed, "{r}");
    }
    assert_eq!(outcome(&r, Operation::Multipart), Outcome::Failed, "{r}");
    let f = r.failure().unwrap();
    assert!(
        f.starts_with("multipart upload failed: timed out after 3s"),
        "{f}"
    );
    assert_eq!(outcome(&r, Operation::Delete), Outcome::Skipped, "{r}");
    assert_eq!(
        message(&r, Operation::Delete),
        "not run: the probe timed out"
    );
    assert_eq!(r.cleanup, None, "{r}");
    assert!(r.duration < Duration::from_secs(6), "{:?}", r.duration);
    let direct = config_of(&ctx);
    let left = leftovers(&direct, &ctx.base).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    // Incomplete multipart uploads are invisible to listings; ask with rclone when it is
    // installed (scripts/test-servers.sh install puts it there).
    let out = std::process::Command::new("rclone")
        .args(["backend", "list-multipart-uploads"])
        .arg(format!(":s3:{bucket}"))
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_S3_PROVIDER", "Other")
        .env("RCLONE_S3_ACCESS_KEY_ID", &key)
        .env("RCLONE_S3_SECRET_ACCESS_KEY", &secret)
        .env("RCLONE_S3_ENDPOINT", &ep)
        .env("RCLONE_S3_FORCE_PATH_STYLE", "true")
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                !text.contains(&ctx.base),
                "incomplete multipart upload left: {text}"
            );
        }
        _ => eprintln!("rclone not available: incomplete multipart uploads not checked"),
    }
}

/// Virtual-host-style addressing whose bucket host name does not resolve: the message says to
/// switch to path style (KB#8867).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_host_dns_failure_suggests_path_style() {
    let text = common::s3_conf("http://s3.invalid:9000", "AK", "SECRETSECRET", "bkt")
        .replace("force_path_style = true", "force_path_style = false");
    let cfg = ToolConfig::parse(&text).unwrap();
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(30))).await;
    show("s3 virtual host, unresolvable", &r);
    let f = r.failure().unwrap();
    assert!(f.contains("cannot resolve bkt.s3.invalid:9000"), "{f}");
    assert!(f.contains("forcePathStyle: true"), "{f}");
    assert!(f.contains("force_path_style = true"), "{f}");
}

/// TLS to a server that speaks plain HTTP: a TLS message with the caCert/insecure hints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failure_suggests_ca_cert() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let cfg = s3_config(
        &format!("https://127.0.0.1:{port}"),
        "AK",
        "SECRETSECRET",
        "bkt",
    );
    let r = probe::run(&cfg, &opts("repo", Duration::from_secs(30))).await;
    show("s3 https to plain http", &r);
    let f = r.failure().unwrap();
    assert!(f.starts_with("bucket check failed: TLS failed"), "{f}");
    assert!(f.contains("caCert"), "{f}");
    assert!(f.contains("insecure: true"), "{f}");
}

/// The data path reads failures with the probe's classifier: the same diagnosis, the service's
/// error kept as the source, and whether trying again may help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_path_errors_keep_their_source_and_say_whether_they_are_temporary() {
    use backuprepo_transfer::{Problem, Storage};
    // A closed port: unreachable, temporary.
    let ep = format!("http://127.0.0.1:{}", closed_port());
    let cfg = s3_config(&ep, "AK", "SECRETSECRET", "bkt");
    let storage = Storage::open(&cfg, "", None).unwrap();
    let err = storage.stat("x").await.unwrap_err();
    assert_eq!(err.problem(), Some(Problem::Unreachable), "{err}");
    assert!(err.is_temporary(), "{err}");
    assert!(std::error::Error::source(&err).is_some(), "{err}");
    assert!(
        err.to_string().contains("cannot reach the storage at"),
        "{err}"
    );

    // A missing bucket: the probe's message, permanent.
    let Some((ep, key, secret, _)) = s3_env() else {
        return;
    };
    let bucket = format!("br-missing-dp-{}", std::process::id());
    let cfg = s3_config(&ep, &key, &secret, &bucket);
    let storage = Storage::open(&cfg, "", None).unwrap();
    let err = storage.stat("x").await.unwrap_err();
    assert_eq!(err.problem(), Some(Problem::MissingBucket), "{err}");
    assert!(!err.is_temporary(), "{err}");
    assert!(std::error::Error::source(&err).is_some(), "{err}");
    let m = err.to_string();
    assert!(
        m.contains(&format!("bucket {bucket:?} does not exist")),
        "{m}"
    );
    assert!(m.contains("never creates buckets"), "{m}");
    assert!(!m.contains(&secret), "{m}");
}

/// `status.usage` measurement on each backend: totals and per top-level directory match what
/// was pushed, temporaries do not count, and where the listing can resume (S3) a small budget
/// gives partial runs that add up to the same figures.
async fn usage_is_measured(backend_name: &'static str) {
    use backuprepo_transfer::storage::Storage;
    let Some(c) = common::ctx(backend_name, "usage") else {
        return;
    };
    let files: [(&str, usize); 7] = [
        ("ns-a/b1/dump.sql", 100),
        ("ns-a/b1/wal-1", 10),
        ("ns-a/b2/dump.sql", 200),
        ("ns-b/b3/dump.sql", 1000),
        ("ns-b/b3/wal-1", 1),
        ("ns-c/x", 5),
        ("top-level.txt", 7),
    ];
    for (i, (path, len)) in files.iter().enumerate() {
        c.push(path, &common::data(*len, i as u64), &[], &[]);
    }
    // A leftover that is no backup: not counted.
    c.push(".backuprepo-precheck/old/precheck.txt", b"x", &[], &[]);
    let storage = Storage::open(&config_of(&c), &c.base, None).unwrap();
    let now = backuprepo_local::now;
    let full = storage.measure_usage(None, 1_000_000, now()).await.unwrap();
    assert!(!full.partial, "[{backend_name}] {full:?}");
    assert_eq!(full.object_count, 7, "[{backend_name}] {full:?}");
    assert_eq!(full.total_bytes, 1323, "[{backend_name}] {full:?}");
    let figures = |p: &str| {
        full.by_prefix
            .get(p)
            .map(|f| (f.object_count, f.total_bytes))
    };
    assert_eq!(figures("ns-a"), Some((3, 310)), "[{backend_name}] {full:?}");
    assert_eq!(figures("ns-b"), Some((2, 1001)));
    assert_eq!(figures("ns-c"), Some((1, 5)));
    assert_eq!(figures(""), Some((1, 7)));
    // Three entries per run.
    let mut u = storage.measure_usage(None, 3, now()).await.unwrap();
    let mut runs = 1;
    while u.partial {
        assert!(u.resume_after.is_some());
        u = storage.measure_usage(Some(&u), 3, now()).await.unwrap();
        runs += 1;
        assert!(runs < 20, "[{backend_name}] never completes");
    }
    // OpenDAL resumes listings after a key on S3 only (its azblob service has no start_after).
    let resumable = backend_name == "s3";
    assert_eq!(runs > 1, resumable, "[{backend_name}] {runs} runs");
    assert_eq!(
        (u.object_count, u.total_bytes, &u.by_prefix),
        (full.object_count, full.total_bytes, &full.by_prefix),
        "[{backend_name}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_local() {
    usage_is_measured("local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_s3() {
    usage_is_measured("s3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_ftp() {
    usage_is_measured("ftp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_on_azure() {
    usage_is_measured("azure").await;
}

/// The read-only check (a read-only repository) on each backend: bucket, list, and a read of
/// an existing object pass; put, multipart and delete are skipped; nothing is written.
async fn read_only_check(backend_name: &'static str) {
    let Some(c) = common::ctx(backend_name, "rocheck") else {
        return;
    };
    c.push("ns/b1/dump.sql", b"kept", &[], &[]);
    let mut cfg = config_of(&c);
    cfg.tuning.read_only = true;
    let r = probe::run(&cfg, &opts(&c.base, Duration::from_secs(30))).await;
    show(backend_name, &r);
    assert!(r.passed(), "[{backend_name}] {r}");
    for op in [Operation::Put, Operation::Multipart, Operation::Delete] {
        assert_eq!(outcome(&r, op), Outcome::Skipped, "[{backend_name}] {op}");
    }
    assert_eq!(outcome(&r, Operation::Get), Outcome::Passed);
    assert!(
        message(&r, Operation::Get).contains("dump.sql"),
        "[{backend_name}] {r}"
    );
    assert_eq!(outcome(&r, Operation::List), Outcome::Passed);
    assert!(leftovers(&cfg, &format!("{}/{PROBE_DIR}", c.base))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_check_on_local() {
    read_only_check("local").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_check_on_s3() {
    read_only_check("s3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_check_on_ftp() {
    read_only_check("ftp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_check_on_azure() {
    read_only_check("azure").await;
}
