//! Bad credentials, unreachable endpoints, missing buckets and bad configs: each a clear error,
//! exit 1, no secret in the output, and nothing created on the server.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{az_conf, bin, s3_conf};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Run `datasafed -c <conf text> args...`; returns (exit code, stderr).
fn run(conf: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.conf");
    std::fs::write(&path, conf).unwrap();
    let o = Command::new(bin())
        .arg("datasafed")
        .arg("-c")
        .arg(&path)
        .args(args)
        .env_remove("DATASAFED_LOCAL_BACKEND_PATH")
        .env_remove("DATASAFED_BACKEND_BASE_PATH")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout),
    )
}

fn required(name: &str) -> Option<String> {
    let v = var(name);
    if v.is_none() && var("BR_REQUIRE_SERVERS").is_some() {
        panic!("{name} is required (BR_REQUIRE_SERVERS)");
    }
    v
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn s3_wrong_secret_is_denied_and_not_printed() {
    let (Some(ep), Some(key), Some(bucket)) = (
        required("BR_S3_ENDPOINT"),
        required("BR_S3_ACCESS_KEY"),
        required("BR_S3_BUCKET"),
    ) else {
        return;
    };
    let secret = "WRONG-SECRET-value-1234567890";
    let conf = s3_conf(&ep, &key, secret, &bucket);
    for args in [&["list", "/"][..], &["pull", "x", "-"], &["stat", "/"]] {
        let (code, out) = run(&conf, args);
        assert_eq!(code, Some(1), "{args:?}: {out}");
        assert!(
            out.contains("rejected the credentials") || out.contains("access denied"),
            "{args:?}: {out}"
        );
        assert!(!out.contains(secret), "secret leaked: {out}");
    }
    let (code, out) = run(&conf, &["push", "-", "x"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("Error: push to \"x\": "), "{out}");
    assert!(!out.contains(secret));
}

#[test]
fn s3_read_only_user_cannot_push() {
    let (Some(ep), Some(key), Some(secret), Some(bucket)) = (
        required("BR_S3_ENDPOINT"),
        required("BR_S3_RO_ACCESS_KEY"),
        required("BR_S3_RO_SECRET_KEY"),
        required("BR_S3_BUCKET"),
    ) else {
        return;
    };
    let conf = s3_conf(&ep, &key, &secret, &bucket);
    let (code, out) = run(&conf, &["list", "/"]);
    assert_eq!(code, Some(0), "read-only user can list: {out}");
    let (code, out) = run(&conf, &["push", "-", "ro/x"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("access denied") || out.contains("rejected"),
        "{out}"
    );
}

#[test]
fn s3_missing_bucket_is_named_and_never_created() {
    let (Some(ep), Some(key), Some(secret)) = (
        required("BR_S3_ENDPOINT"),
        required("BR_S3_ACCESS_KEY"),
        required("BR_S3_SECRET_KEY"),
    ) else {
        return;
    };
    let conf = s3_conf(&ep, &key, &secret, "no-such-bucket-br");
    for args in [
        &["push", "-", "x"][..],
        &["list", "x/"],
        &["pull", "x", "-"],
    ] {
        let (code, out) = run(&conf, args);
        assert_eq!(code, Some(1), "{args:?}: {out}");
        assert!(
            out.contains("does not exist") || out.contains("not found"),
            "{args:?}: {out}"
        );
    }
    let (_, out) = run(&conf, &["push", "-", "x"]);
    assert!(
        out.contains("never creates buckets") || out.contains("does not exist"),
        "{out}"
    );
    // The bucket must still not exist: a signed request from the admin would list it.
    let (code, out) = run(&conf, &["pull", "x", "-"]);
    assert_eq!(code, Some(1), "{out}");
}

#[test]
fn s3_unreachable_endpoint() {
    let conf = s3_conf(
        &format!("http://127.0.0.1:{}", closed_port()),
        "k",
        "s",
        "b",
    );
    let (code, out) = run(&conf, &["list", "/"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("cannot reach the storage at s3 bucket \"b\" at http://127.0.0.1:"),
        "{out}"
    );
}

#[test]
fn ftp_wrong_password_and_unreachable() {
    let (Some(port), Some(user)) = (required("BR_FTP_PORT"), required("BR_FTP_USER")) else {
        return;
    };
    let conf = format!("[storage]\ntype = ftp\nhost = 127.0.0.1\nport = {port}\nuser = {user}\npass.need_obscure = not-the-password-42\n");
    let (code, out) = run(&conf, &["list", "/"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rejected the credentials") || out.contains("denied"),
        "{out}"
    );
    assert!(!out.contains("not-the-password-42"));
    let conf = format!(
        "[storage]\ntype = ftp\nhost = 127.0.0.1\nport = {}\nuser = u\npass.need_obscure = p\n",
        closed_port()
    );
    let (code, out) = run(&conf, &["list", "/"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("cannot reach"), "{out}");
}

#[test]
fn azure_wrong_key_and_missing_container() {
    let (Some(ep), Some(account), Some(key), Some(container)) = (
        required("BR_AZ_ENDPOINT"),
        required("BR_AZ_ACCOUNT"),
        required("BR_AZ_KEY"),
        required("BR_AZ_CONTAINER"),
    ) else {
        return;
    };
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let (code, out) = run(&az_conf(&ep, &account, wrong, &container), &["list", "/"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("rejected the credentials") || out.contains("denied"),
        "{out}"
    );
    assert!(!out.contains(wrong));
    let (code, out) = run(
        &az_conf(&ep, &account, &key, "no-such-container"),
        &["push", "-", "x"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not exist"), "{out}");
}

#[test]
fn bad_configs_name_the_problem() {
    let cases = [
        ("[storage]\ntype = dropbox\n", "unknown storage type \"dropbox\""),
        ("[storage]\ntype = s3\nroot = b\naccess_key_id = k\nsecret_access_key = s\nendpoint = http://x\nbukket = y\n", "unknown key `bukket`"),
        ("[storage]\ntype = s3\nroot = b\naccess_key_id = k\nsecret_access_key = s\n", "neither `endpoint` nor `region`"),
        ("[storage]\ntype = s3\nroot = b\nendpoint = http://x\n", "access_key_id and secret_access_key are required"),
        ("[storage]\ntype = ftp\nhost = h\nport = 99999\n", "invalid port \"99999\""),
        ("[storage]\ntype = ftp\nhost = h\npass = %%%\n", "pass.need_obscure"),
        ("[other]\nx = y\n", "no [storage] section"),
        ("[storage\n", "malformed section header"),
        ("[storage]\ntype = s3\nroot = b\naccess_key_id = k\nsecret_access_key = s\nendpoint = http://x\nchunk_size = big\n", "invalid size \"big\" for chunk_size"),
    ];
    for (conf, want) in cases {
        let (code, out) = run(conf, &["list", "/"]);
        assert_eq!(code, Some(1), "{conf}: {out}");
        assert!(out.contains(want), "{conf}\nwanted {want:?} in {out:?}");
    }
    let o = Command::new(bin())
        .args([
            "datasafed",
            "-c",
            "/nonexistent/datasafed.conf",
            "list",
            "/",
        ])
        .env_remove("DATASAFED_LOCAL_BACKEND_PATH")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("cannot read the config file /nonexistent/datasafed.conf"),
        "{out}"
    );
}

#[test]
fn local_backend_path_must_be_a_directory() {
    let o = Command::new(bin())
        .args(["datasafed", "list", "/"])
        .env("DATASAFED_LOCAL_BACKEND_PATH", "/nonexistent/dir")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("specified by DATASAFED_LOCAL_BACKEND_PATH does not exist"),
        "{err}"
    );
}

#[test]
fn runs_as_datasafed_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("datasafed");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let o = Command::new(&link).arg("version").output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("datasafed: "));
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let o = Command::new(&link)
        .args(["push", "-", "a/b"])
        .env("DATASAFED_LOCAL_BACKEND_PATH", &repo)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(repo.join("a/b").is_file());
    let o = Command::new(&link).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for verb in [
        "push", "pull", "list", "stat", "rm", "rmdir", "mkdir", "getconf", "version",
    ] {
        assert!(help.contains(verb), "help lacks {verb}");
    }
}

/// `--store kube` without a cluster: one clear line, exit 1, no local store touched; and with
/// a kubeconfig whose API server does not answer, the error names what it tried.
#[test]
fn store_kube_without_a_cluster_says_so() {
    let home = tempfile::tempdir().unwrap();
    let run = |kubeconfig: &std::path::Path| {
        Command::new(bin())
            .args(["--store", "kube", "list"])
            .env("HOME", home.path())
            .env("KUBECONFIG", kubeconfig)
            .env("BACKUPREPO_HOME", home.path().join("store"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap()
    };
    let o = run(&home.path().join("missing-kubeconfig"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--store kube: cannot find a cluster"), "{err}");
    assert!(!home.path().join("store").exists());

    let kubeconfig = home.path().join("config");
    let port = closed_port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user: {{token: secret-token-123}}\n"
        ),
    )
    .unwrap();
    let o = run(&kubeconfig);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot list backuprepos"), "{err}");
    assert!(err.contains("reachable"), "{err}");
    assert!(!err.contains("secret-token-123"), "{err}");
}
