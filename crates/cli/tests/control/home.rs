//! The test home of the control-plane tests: a `BACKUPREPO_HOME` of its own, the real binary
//! run in it (every output checked for the test secret), and the S3 test server.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value as Json;

pub(crate) const SECRET: &str = "Sup3r-Secret-Value-9f8e";

pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The S3 test server, or `None` (skip) unless BR_REQUIRE_SERVERS demands it.
pub(crate) fn s3() -> Option<(String, String, String, String)> {
    match (
        var("BR_S3_ENDPOINT"),
        var("BR_S3_BUCKET"),
        var("BR_S3_ACCESS_KEY"),
        var("BR_S3_SECRET_KEY"),
    ) {
        (Some(e), Some(b), Some(k), Some(s)) => Some((e, b, k, s)),
        _ if var("BR_REQUIRE_SERVERS").is_some() => {
            panic!("BR_REQUIRE_SERVERS is set but the S3 server variables are missing")
        }
        _ => None,
    }
}

pub(crate) struct Home {
    pub(crate) dir: tempfile::TempDir,
}

impl Home {
    pub(crate) fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backuprepo"));
        c.args(args)
            .env("BACKUPREPO_HOME", self.path())
            .env("BACKUPREPO_PROBE_TIMEOUT", "20")
            .env_remove("DATASAFED_ENCRYPTION_ALGORITHM")
            .env_remove("DATASAFED_ENCRYPTION_PASS_PHRASE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(SECRET),
                "a secret was printed by {args:?}"
            );
        }
        out
    }

    pub(crate) fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "{args:?} should fail:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A repository on the `minio` provider in `bucket` of the S3 test server, under `prefix`.
    pub(crate) fn s3_repo(&self, name: &str, bucket: &str, prefix: &str) {
        let (endpoint, _, key, secret) = s3().expect("the S3 test server");
        self.ok(
            &[
                "create",
                name,
                "--provider",
                "minio",
                "--bucket",
                bucket,
                "--endpoint",
                &endpoint,
                "--access-key-id",
                &key,
                "--secret-access-key",
                &secret,
                "--path-prefix",
                prefix,
            ],
            None,
        );
    }

    /// A repository on the vsftpd test server under `prefix` ("": its home); `false` (nothing
    /// made) when the server is not configured.
    pub(crate) fn ftp_repo(&self, name: &str, prefix: &str) -> bool {
        let (Some(host), Some(port), Some(user), Some(pass)) = (
            var("BR_FTP_HOST"),
            var("BR_FTP_PORT"),
            var("BR_FTP_USER"),
            var("BR_FTP_PASS"),
        ) else {
            assert!(
                var("BR_REQUIRE_SERVERS").is_none(),
                "FTP server variables missing"
            );
            return false;
        };
        let mut args = vec![
            "create",
            name,
            "--provider",
            "ftp",
            "--ftp-host",
            &host,
            "--ftp-port",
            &port,
            "--ftp-user",
            &user,
            "--ftp-password",
            &pass,
        ];
        if !prefix.is_empty() {
            args.extend(["--path-prefix", prefix]);
        }
        self.ok(&args, None);
        true
    }

    /// A repository on the Azurite test server under `prefix` ("": the container's root);
    /// `false` (nothing made) when the server is not configured.
    pub(crate) fn az_repo(&self, name: &str, prefix: &str) -> bool {
        let (Some(ep), Some(acct), Some(k), Some(c)) = (
            var("BR_AZ_ENDPOINT"),
            var("BR_AZ_ACCOUNT"),
            var("BR_AZ_KEY"),
            var("BR_AZ_CONTAINER"),
        ) else {
            assert!(
                var("BR_REQUIRE_SERVERS").is_none(),
                "Azurite variables missing"
            );
            return false;
        };
        let mut args = vec![
            "create",
            name,
            "--provider",
            "azureblob",
            "--container",
            &c,
            "--account-name",
            &acct,
            "--account-key",
            &k,
            "--endpoint",
            &ep,
        ];
        if !prefix.is_empty() {
            args.extend(["--path-prefix", prefix]);
        }
        self.ok(&args, None);
        true
    }

    /// A repository on the `local` provider in a new directory (returned).
    pub(crate) fn local_repo(&self, name: &str) -> PathBuf {
        let data = self.dir.path().join(format!("store-{name}"));
        std::fs::create_dir(&data).unwrap();
        self.ok(
            &[
                "create",
                name,
                "--provider",
                "local",
                "--path",
                data.to_str().unwrap(),
            ],
            None,
        );
        data
    }

    pub(crate) fn repo(&self, name: &str) -> Json {
        serde_json::from_str(&self.ok(&["get", "backuprepo", name, "-o", "json"], None)).unwrap()
    }

    pub(crate) fn phase(&self, name: &str) -> String {
        self.repo(name)["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn condition(&self, name: &str, type_: &str) -> (String, String, String) {
        let r = self.repo(name);
        let c = r["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
            .clone();
        (
            c["status"].as_str().unwrap().into(),
            c["reason"].as_str().unwrap().into(),
            c["message"].as_str().unwrap_or_default().into(),
        )
    }

    pub(crate) fn repo_names(&self) -> Vec<String> {
        let v: Json = serde_json::from_str(&self.ok(&["list", "-o", "json"], None)).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// No file anywhere in the store contains the secret except the 0600 secret files and
    /// tool configs.
    pub(crate) fn secret_only_in_private_files(&self) {
        for entry in walk(&self.path()) {
            let text = std::fs::read(&entry).unwrap_or_default();
            let b64 = base64_of(SECRET);
            let has = String::from_utf8_lossy(&text).contains(SECRET)
                || String::from_utf8_lossy(&text).contains(&b64);
            if has {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
                assert_eq!(
                    mode,
                    0o600,
                    "{} holds a secret with mode {mode:o}",
                    entry.display()
                );
                let p = entry.display().to_string();
                assert!(
                    p.contains("/secrets/") || p.contains("/toolconfigs/"),
                    "secret in {p}"
                );
            }
        }
    }
}

pub(crate) fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub(crate) fn base64_of(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
