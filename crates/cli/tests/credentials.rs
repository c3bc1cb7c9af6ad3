//! Credentials on the command line: a value that begins with `-` is the flag's value (kbcli
//! does the same; the test servers' S3 secret always begins with `-`), and a value that begins
//! with `@` but names no file is never echoed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn run(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backuprepo"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("BACKUPREPO_SECRET_ACCESS_KEY")
        .env_remove("BACKUPREPO_ACCESS_KEY_ID")
        .output()
        .unwrap()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_secret_beginning_with_a_dash_is_a_value() {
    let (Some(endpoint), Some(bucket), Some(key), Some(secret)) = (
        var("BR_S3_ENDPOINT"),
        var("BR_S3_BUCKET"),
        var("BR_S3_ACCESS_KEY"),
        var("BR_S3_SECRET_KEY"),
    ) else {
        assert!(
            var("BR_REQUIRE_SERVERS").as_deref() != Some("1"),
            "BR_REQUIRE_SERVERS=1 but no S3 server"
        );
        println!("skipped: a_secret_beginning_with_a_dash_is_a_value: no S3 server");
        return;
    };
    // The servers' secret begins with `-`; if it did not, make one that does (the key is then
    // wrong, and the check says so, but clap must still take it as the value).
    let (dashed, real) = if secret.starts_with('-') {
        (secret.clone(), true)
    } else {
        (format!("-{secret}"), false)
    };
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &[
            "create",
            "dash",
            "--provider",
            "minio",
            "--endpoint",
            &endpoint,
            "--bucket",
            &bucket,
            "--force-path-style",
            "--path-prefix",
            "dash-secret",
            "--access-key-id",
            &key,
            "--secret-access-key",
            &dashed,
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("unexpected argument"), "{}", show(&o));
    assert_ne!(o.status.code(), Some(2), "a parse error: {}", show(&o));
    if real {
        assert!(o.status.success(), "{}", show(&o));
    }
    assert!(!format!("{}{err}", String::from_utf8_lossy(&o.stdout)).contains(&dashed));
}

#[test]
fn an_at_value_that_is_no_file_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        &[
            "create",
            "at",
            "--provider",
            "minio",
            "--endpoint",
            "http://127.0.0.1:9",
            "--bucket",
            "b",
            "--access-key-id",
            "AK",
            "--secret-access-key",
            "@Sup3r-Secret-Value-9f8e",
        ],
    );
    assert!(!o.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains("Sup3r-Secret-Value-9f8e"), "echoed: {all}");
    assert!(all.contains("--secret-access-key @FILE"), "{all}");
    assert!(
        all.contains("standard input"),
        "says what to do instead: {all}"
    );
}
